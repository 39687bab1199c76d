//! A test hook for `loom-tests/` (compiled only under `cfg(loom)`): a closure
//! that every unguarded segment access runs *inside* its liveness window
//! (between `Session::enter` and the matching exit), so a model can read a
//! loom cell exactly where the segment reads its memory.

use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::rc::Rc;

type Hook = ManuallyDrop<Rc<dyn Fn()>>;

std::thread_local! {
    // A std thread-local on purpose: every loom thread of one model runs on
    // the OS thread that called `loom::model`, so they all see the hook.
    // `ManuallyDrop`: a hook left behind by a panicking model holds loom
    // objects, which must not be dropped outside a model (at thread exit).
    static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
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
    // A previous hook (left by a model that panicked) is leaked, not dropped:
    // its loom objects belong to a finished execution.
    HOOK.with(|h| *h.borrow_mut() = Some(ManuallyDrop::new(Rc::new(hook))));
}

/// Removes the hook.
///
/// # Examples
///
/// ```ignore
/// memscope::segment::loom_hook::clear();
/// ```
pub fn clear() {
    if let Some(h) = HOOK.with(|h| h.borrow_mut().take()) {
        drop(ManuallyDrop::into_inner(h));
    }
}

pub(crate) fn run() {
    let hook = HOOK.with(|h| h.borrow().as_ref().map(|h| Rc::clone(h)));
    if let Some(h) = hook {
        h();
    }
}
