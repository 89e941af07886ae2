//! khonsu-txn
