//! Binds the system zlib with `bind!` alone and checks it against known
//! answers: the CRC-32 of a fixed string and a compress/uncompress round
//! trip. Run: `cargo run --example zlib`.
//!
//! Every pointer argument is a segment: `bind!` acquires its session for the
//! call, so the buffers cannot be freed while zlib works on them, and a
//! buffer of a closed session never reaches C.

use core::ffi::c_ulong;
use memscope::prelude::*;

bind! {
    /// The part of zlib's API this program uses (zlib.h).
    struct Zlib {
        /// A static string of the library's: valid while it is loaded.
        fn version() -> &core::ffi::CStr = "zlibVersion";
        fn crc32(crc: c_ulong, buf: &Segment<'_>, len: u32) -> c_ulong;
        fn compress_bound(source_len: c_ulong) -> c_ulong = "compressBound";
        fn compress2(
            dest: &mut Segment<'_>,
            dest_len: &mut Segment<'_>,
            source: &Segment<'_>,
            source_len: c_ulong,
            level: i32,
        ) -> i32;
        fn uncompress(
            dest: &mut Segment<'_>,
            dest_len: &mut Segment<'_>,
            source: &Segment<'_>,
            source_len: c_ulong,
        ) -> i32;
    }
}

const Z_OK: i32 = 0;

fn main() -> memscope::Result<()> {
    let session = Session::confined();
    // SAFETY: loading zlib runs its initialisers (it has none of note).
    let lib = unsafe { Library::open("libz.so.1", &session) }?;
    // SAFETY: the declarations above match zlib.h (uLong is unsigned long,
    // uInt is unsigned int, Bytef*/uLongf* are pointers; zlibVersion
    // returns a string constant of the library).
    let z = unsafe { Zlib::load(&lib) }?;

    let version = z.version()?;
    println!("zlib {}", version.to_string_lossy());
    assert!(version.to_bytes().starts_with(b"1."), "zlib 1.x");

    let arena = Arena::confined();
    let text = b"The quick brown fox jumps over the lazy dog";
    let input = arena.allocate_copy(text)?;
    let crc = z.crc32(0, &input, text.len() as u32)?;
    println!("crc32(\"{}\") = {crc:#010x}", String::from_utf8_lossy(text));
    assert_eq!(crc, 0x414f_a339, "the well-known CRC-32 of this sentence");

    // Compress 64 KiB of repetitive text, then uncompress it again.
    let original: Vec<u8> = text.iter().copied().cycle().take(64 * 1024).collect();
    let src = arena.allocate_copy(&original)?;
    let bound = z.compress_bound(original.len() as c_ulong)?;
    let mut packed = arena.allocate(bound as usize, 1)?;
    let mut packed_len = arena.allocate_value(bound)?;
    let rc = z.compress2(
        &mut packed,
        &mut packed_len,
        &src,
        original.len() as c_ulong,
        9,
    )?;
    assert_eq!(rc, Z_OK, "compress2");
    let packed_len = packed_len.get::<c_ulong>(0)?;
    println!("compressed {} bytes to {packed_len}", original.len());

    let mut out = arena.allocate(original.len(), 1)?;
    let mut out_len = arena.allocate_value(original.len() as c_ulong)?;
    let packed_view = packed.slice(0, packed_len as usize)?;
    let rc = z.uncompress(&mut out, &mut out_len, &packed_view, packed_len)?;
    assert_eq!(rc, Z_OK, "uncompress");
    assert_eq!(out_len.get::<c_ulong>(0)?, original.len() as c_ulong);
    assert_eq!(out.to_vec()?, original, "round trip");
    println!("uncompressed back to {} bytes: identical", original.len());

    // A buffer whose session has closed is refused before zlib sees it.
    let other = Arena::shared();
    let gone = other.allocate_copy(text)?;
    other.close()?;
    assert_eq!(z.crc32(0, &gone, text.len() as u32), Err(Error::Closed));
    println!("a closed buffer: {:?}", Error::Closed);

    // Once zlib's session has closed, calls through the binding fail (the
    // binding itself keeps the library mapped until it is dropped).
    session.close()?;
    assert_eq!(z.crc32(0, &input, text.len() as u32), Err(Error::Closed));
    println!("after closing zlib's session: {:?}", Error::Closed);
    Ok(())
}
