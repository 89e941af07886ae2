//! khonsu-storage
