//! The main job: a multithreaded service on one shared session (grown by later work).
fn main() {
    let s = memscope::Session::shared();
    println!("session {} open: {}", s.id(), s.is_alive());
    s.close().unwrap();
}
