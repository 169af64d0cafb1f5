//! A file of fixed size mapped into memory (`MAP_SHARED`), for the pending log: a write is a
//! copy into the page cache, with no system call. The crate's second and last unsafe module,
//! behind a safe API.
//!
//! The mapping's pages are the file's pages in the kernel's page cache, so what is copied into
//! them is in the file as the copy ends: it survives a crash of the process (the kernel writes
//! dirty pages back whether or not their writer lives), as a `write(2)` would.
//!
//! A write into a mapping cannot return an error: what would have been one (no space for the
//! page, a failed read of it) is a `SIGBUS`, which ends the process. So a file is mapped only
//! where that cannot come from a full disk ([`can_map`]): on Linux, on ext4 or tmpfs, after
//! its blocks are allocated (`posix_fallocate`), since there overwriting allocated blocks
//! needs no new space. Copy-on-write filesystems (btrfs, ZFS, XFS with shared extents) need
//! space for every overwrite; there, and on other systems, the pending log writes with
//! `pwrite(2)` instead. What is left is a disk that fails to read a page back, and a file
//! truncated by another process while mapped (the pending log holds it under an exclusive
//! `flock`; only a process ignoring that could): each ends the process with `SIGBUS`, without
//! corrupting its memory.
//!
//! [`Mapped`] is `Send` and not `Sync`: whoever writes holds it (the pending log keeps it under
//! its lock). No reference to the mapped memory is ever made; bytes go in and out by copies
//! through its raw pointer, within bounds checked here.

#![expect(unsafe_code, reason = "mmap(2) of a file the caller holds; each unsafe block says why it is sound")]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// A whole file mapped read-write and shared, of a fixed length.
pub(crate) struct Mapped {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value (unmapped on drop); moving it to
// another thread moves that ownership. It is not `Sync`: writes take `&mut self`.
unsafe impl Send for Mapped {}

/// Whether `file` may be mapped: Linux, and a filesystem that overwrites allocated blocks in
/// place (ext2/3/4, tmpfs), so that no write into the mapping needs new space.
pub(crate) fn can_map(file: &File) -> bool {
    #[cfg(target_os = "linux")]
    {
        const EXT_SUPER_MAGIC: i64 = 0xEF53;
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        // SAFETY: `statfs` is plain data, zeroed is a valid value; the call fills it for an open
        // descriptor or fails.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `fs` outlives the call.
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) } != 0 {
            return false;
        }
        // `f_type` is an `i64` here, an `i32` or a `u32` on other targets.
        fn wide<T: Into<i64>>(v: T) -> i64 {
            v.into()
        }
        let kind = wide(fs.f_type);
        kind == EXT_SUPER_MAGIC || kind == TMPFS_MAGIC
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        false
    }
}

impl Mapped {
    /// Allocates `file`'s blocks up to `len` bytes (it grows to `len` if shorter; what it holds
    /// is kept) and maps them. Only for a file [`can_map`] accepts.
    pub(crate) fn new(file: &File, len: usize) -> io::Result<Mapped> {
        if len == 0 || !can_map(file) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "not a file to map"));
        }
        allocate(file, len)?;
        // SAFETY: a new mapping (no address asked for) of `len` bytes of an open file that is at
        // least that long now; the kernel checks the descriptor and the protection.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapped { ptr, len })
    }

    /// Copies `bytes` in at `at`. False, and nothing written, when they do not fit.
    pub(crate) fn write(&mut self, at: usize, bytes: &[u8]) -> bool {
        if at.checked_add(bytes.len()).is_none_or(|end| end > self.len) {
            return false;
        }
        // SAFETY: `at..at + bytes.len()` is within the mapping (checked above); `bytes` is
        // ordinary memory, not part of the mapping (no reference into it is ever handed out),
        // so the two do not overlap; `&mut self` means no other write through this value.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(at), bytes.len()) };
        true
    }

    /// Stores `v` at `at` (a multiple of 8) in one 8-byte store, ordered after every write
    /// before it: a reader of the file (after this process died) sees the bytes a header counts.
    pub(crate) fn store_u64(&mut self, at: usize, v: u64) -> bool {
        if !at.is_multiple_of(8) || at.checked_add(8).is_none_or(|end| end > self.len) {
            return false;
        }
        // SAFETY: within the mapping (checked above) and 8-aligned (the mapping is page-aligned
        // and `at` a multiple of 8); `&mut self` means no other access through this value, so
        // no non-atomic access races with it.
        let cell = unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(at).cast::<u64>()) };
        cell.store(v.to_le(), Ordering::Release);
        true
    }

    /// Copies out the 8 bytes at `at`.
    #[cfg(test)]
    fn read8(&self, at: usize) -> Option<[u8; 8]> {
        if at.checked_add(8).is_none_or(|end| end > self.len) {
            return None;
        }
        let mut out = [0u8; 8];
        // SAFETY: within the mapping (checked above), into a local array.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(at), out.as_mut_ptr(), 8) };
        Some(out)
    }
}

/// Allocates `file`'s blocks for its first `len` bytes.
#[cfg(target_os = "linux")]
fn allocate(file: &File, len: usize) -> io::Result<()> {
    let size = libc::off_t::try_from(len).map_err(|_| io::Error::other("mapping too large"))?;
    loop {
        // SAFETY: a plain call on an open descriptor; it returns an error number, not -1.
        match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size) } {
            0 => return Ok(()),
            libc::EINTR => continue,
            err => return Err(io::Error::from_raw_os_error(err)),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn allocate(_: &File, _: usize) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "mapped files are for Linux"))
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, of that length, unmapped once; nothing refers to it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use switchyard_testkit::TempDir;

    use super::*;

    #[test]
    fn writes_land_in_the_file_within_bounds_only() {
        let dir = TempDir::new("switchyard-map").unwrap();
        if !can_map(&File::open(dir.path()).unwrap()) {
            eprintln!("skipping: {} is not on ext4 or tmpfs", dir.path().display());
            return;
        }
        let path = dir.path().join("f");
        std::fs::write(&path, b"kept").unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mut map = Mapped::new(&file, 4096).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096, "grown to the mapping");
        assert!(map.write(4, b"-and-more"));
        assert!(map.store_u64(4088, 7));
        assert!(!map.store_u64(4084, 7), "unaligned");
        assert!(!map.write(4089, &[0; 8]), "past the end");
        assert!(!map.write(usize::MAX, b"x"));
        assert_eq!(map.read8(4088), Some(7u64.to_le_bytes()));
        assert_eq!(map.read8(4089), None);
        // Another reader sees the writes through the file, as another process would.
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(&back[..13], b"kept-and-more");
        assert_eq!(&back[4088..], &7u64.to_le_bytes());
        drop(map);
        assert!(Mapped::new(&file, 0).is_err());
    }
}
