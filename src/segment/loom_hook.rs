//! A test hook for `loom-tests/` (compiled only under `cfg(loom)`): a closure
//! that every unguarded segment access runs *inside* its liveness window
//! (between `Session::enter` and the matching exit), so a model can read a
//! loom cell exactly where the segment reads its memory.

use std::cell::RefCell;
use std::rc::Rc;

std::thread_local! {
    // A std thread-local on purpose: every loom thread of one model runs on
    // the OS thread that called `loom::model`, so they all see the hook.
    static HOOK: RefCell<Option<Rc<dyn Fn()>>> = const { RefCell::new(None) };
}

/// Installs `hook` (replacing any previous one) for accesses made on this OS
/// thread, i.e. by every loom thread of the current model.
///
/// # Examples
///
/// ```ignore
/// memscope::segment::loom_hook::set(|| ());
/// ```
pub fn set(hook: impl Fn() + 'static) {
    HOOK.with(|h| *h.borrow_mut() = Some(Rc::new(hook)));
}

/// Removes the hook.
///
/// # Examples
///
/// ```ignore
/// memscope::segment::loom_hook::clear();
/// ```
pub fn clear() {
    HOOK.with(|h| *h.borrow_mut() = None);
}

pub(crate) fn run() {
    let hook = HOOK.with(|h| h.borrow().clone());
    if let Some(h) = hook {
        h();
    }
}
