//! A last line of defence around `arrow-select` kernels.
//!
//! The helpers validate what they can before calling a kernel (schemas, mask lengths, index
//! bounds, key types), and for every valid `RecordBatch` the kernels used here return `Ok` or
//! `Err`. But `arrow-select` still has `unimplemented!`/`unreachable!`/`expect` arms and
//! documented panics (e.g. offset overflow in some code paths), and a panic inside a commit would
//! take down a thread that may hold transactional state. So each kernel call runs under
//! [`std::panic::catch_unwind`] and a panic becomes [`Error::KernelPanic`](crate::Error::KernelPanic).
//!
//! This does not help under `panic = "abort"`, and the panic hook still prints the message; the
//! `every_data_type` integration test asserts that no supported type ever reaches this path.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

use crate::error::{KernelPanicSnafu, Result};

/// Runs `kernel`, turning a panic into [`Error::KernelPanic`](crate::Error::KernelPanic) for
/// `operation`.
pub(crate) fn run_kernel<T>(operation: &'static str, kernel: impl FnOnce() -> T) -> Result<T> {
    // AssertUnwindSafe: the kernels only read their (immutable, reference-counted) inputs and
    // build fresh outputs; a panic leaves no partially mutated state behind that anyone observes.
    panic::catch_unwind(AssertUnwindSafe(kernel)).map_err(|payload| {
        KernelPanicSnafu {
            operation,
            message: panic_message(payload.as_ref()),
        }
        .build()
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn passes_results_through() {
        assert_eq!(run_kernel("add", || 1 + 1).unwrap(), 2);
    }

    #[test]
    fn turns_a_panic_into_an_error() {
        let error = run_kernel("explode", || -> u8 { panic!("boom {}", 42) }).unwrap_err();
        assert!(
            matches!(&error, Error::KernelPanic { operation: "explode", message, .. } if message == "boom 42"),
            "{error:?}"
        );
        let error = run_kernel("explode", || -> u8 { panic!("static") }).unwrap_err();
        assert!(error.to_string().contains("static"), "{error}");
    }
}
