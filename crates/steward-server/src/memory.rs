//! Giving memory back to the operating system after large requests. glibc's allocator keeps
//! freed memory in its arenas, so a process that once scored a 60 MiB body would hold its
//! peak for good; after a large request is answered (and after a large log batch is written)
//! the free pages are returned with `malloc_trim`, and buffers of a mebibyte or more (bodies,
//! tensors, answers, log records) are mapped on their own, so freeing one unmaps it at once.

use std::convert::Infallible;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt as _;

/// From this many bytes a request or an answer counts as large.
pub const LARGE: usize = 8 << 20;
/// Chunks a large answer is written in.
const CHUNK: usize = 1 << 20;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn malloc_trim(pad: usize) -> i32;
    fn mallopt(param: i32, value: i32) -> i32;
}

/// Allocations from this size get their own mapping, returned when freed. Fixing it also stops
/// glibc from raising the threshold (up to 32 MiB) after a large free, which is what kept a
/// large request's buffers in the heap for good.
const MMAP_THRESHOLD: i32 = 1 << 20;

/// Sets the allocator up for a server (once, at start; a no-op off glibc).
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tunables (M_MMAP_THRESHOLD is -3).
    unsafe {
        mallopt(-3, MMAP_THRESHOLD);
    }
}

/// Returns the allocator's free pages to the operating system (a no-op off glibc).
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds free; it takes its own locks.
    unsafe {
        malloc_trim(0);
    }
}

/// Gives memory back, on the blocking pool, when dropped: held by whatever a large request
/// leaves behind until it is gone. Make one only for a large request (`cond.then(|| GiveBack)`,
/// never `then_some(GiveBack)`, which makes and drops one — a trim — every time).
pub struct GiveBack;

impl Drop for GiveBack {
    fn drop(&mut self) {
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(give_back)),
            Err(_) => give_back(),
        }
    }
}

/// A response body; a large one is written in chunks and memory is given back once the last
/// is taken (or the connection drops).
pub fn body(bytes: Vec<u8>) -> Body {
    if bytes.len() < LARGE {
        return Body::from(bytes);
    }
    let bytes = Bytes::from(bytes);
    let chunks: Vec<Bytes> = (0..bytes.len()).step_by(CHUNK).map(|i| bytes.slice(i..(i + CHUNK).min(bytes.len()))).collect();
    drop(bytes);
    let guard = GiveBack;
    let end = futures::stream::once(async move { drop(guard) }).filter_map(|()| async { None::<Result<Bytes, Infallible>> });
    Body::from_stream(futures::stream::iter(chunks.into_iter().map(Ok::<_, Infallible>)).chain(end))
}
