//! Shared workload and engine code for Khonsu's benchmarks.
