//! khonsu-arrow-utils
