//! The broken-twin switch (loom builds only): which deliberately broken
//! variant, if any, the running loom model has switched on.
//!
//! Owns one std thread-local holding the active twin's name (all loom
//! threads of one model run on the caller's OS thread, so a std
//! thread-local reaches every one of them). Touches nothing else, and no
//! module depends on it except the switch sites themselves: each part keeps
//! its own `Twin` enum next to the code its variants break
//! (`session::broken::Twin`, `alloc::twins::Twin`) and asks `on` by name.
#![cfg(loom)]

use std::cell::RefCell;

std::thread_local! {
    static ACTIVE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f` with the twin named `name` switched on for this OS thread.
pub(crate) fn with<R>(name: String, f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ACTIVE.with(|t| *t.borrow_mut() = None);
        }
    }
    ACTIVE.with(|t| *t.borrow_mut() = Some(name));
    let _reset = Reset;
    f()
}

/// `true` when the twin named `name` is on.
pub(crate) fn on(name: &str) -> bool {
    ACTIVE.with(|t| t.borrow().as_deref() == Some(name))
}

/// `true` when any twin is on (the recycling pools stay out of a twin's
/// way: a caught twin panics with loom objects in them).
pub(crate) fn any() -> bool {
    ACTIVE.with(|t| t.borrow().is_some())
}
