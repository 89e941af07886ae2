//! Khonsu's cross-crate and scenario tests, one module per guarantee or anomaly, linked into
//! one test binary, which links once (a binary per file linked arrow, redb and fjall thirty times).
//! Run one group with a filter: `cargo test -p khonsu-tests --test suite -- lost_update::`.

mod aborted_read;
mod atomically;
mod bad_input;
mod bounded_memory;
mod circular_information_flow;
mod conflict_resolution;
mod crash_recovery;
mod damaged_files;
mod dirty_write;
mod footprint_reuse;
mod history;
mod intermediate_read;
mod key_contract;
mod lost_update;
mod model;
mod observed_txn_vanishes;
mod pg_isolation;
mod phantom;
mod precise_serializable;
mod predicate_many_preceders;
mod read_dependencies;
mod read_only_anomaly;
mod read_skew;
mod read_your_writes;
mod reclamation;
mod reclamation_interference;
mod rollback;
mod scan_lost_update;
mod single_process_open;
mod ssi_attack;
mod storage_failure;
mod stress_atomic_visibility;
mod stress_bank;
mod stress_counter;
mod unreadable_values;
mod user_api;
mod write_skew;
