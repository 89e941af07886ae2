//! khonsu
