//! khonsu-concurrency
