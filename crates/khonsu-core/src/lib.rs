//! khonsu-core
