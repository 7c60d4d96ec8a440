//! A path on the heap behind one thin pointer (its length first, then its bytes), so that a
//! paged-out entry spends 8 bytes on it rather than 16 plus a separate length.

use std::ffi::OsStr;
use std::path::Path;
use std::ptr::NonNull;

const LEN: usize = std::mem::size_of::<u32>();

/// Moves `path` to the heap as one allocation; `None` for a path over 4 GiB, which no system
/// accepts anyway.
pub(super) fn into_raw(path: &Path) -> Option<NonNull<u8>> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let len = u32::try_from(bytes.len()).ok()?;
    let mut block = Vec::with_capacity(LEN + bytes.len());
    block.extend_from_slice(&len.to_ne_bytes());
    block.extend_from_slice(bytes);
    NonNull::new(Box::into_raw(block.into_boxed_slice()).cast::<u8>())
}

/// # Safety
/// `block` must come from `into_raw` and not be freed.
unsafe fn len(block: NonNull<u8>) -> usize {
    // SAFETY: the block's first LEN bytes are the length (the caller's contract); `[u8; LEN]`
    // has alignment 1.
    u32::from_ne_bytes(unsafe { block.as_ptr().cast::<[u8; LEN]>().read() }) as usize
}

/// The path in `block`.
///
/// # Safety
/// `block` must come from `into_raw` and not be freed during `'a`.
pub(super) unsafe fn as_path<'a>(block: NonNull<u8>) -> &'a Path {
    // SAFETY: the caller's contract.
    let len = unsafe { len(block) };
    // SAFETY: the block holds LEN + len initialised bytes (the caller's contract), and they
    // came from `as_encoded_bytes` in this process.
    unsafe {
        let bytes = std::slice::from_raw_parts(block.as_ptr().add(LEN), len);
        Path::new(OsStr::from_encoded_bytes_unchecked(bytes))
    }
}

/// Frees `block`.
///
/// # Safety
/// `block` must come from `into_raw`, and nothing may use it afterwards.
pub(super) unsafe fn free(block: NonNull<u8>) {
    // SAFETY: the caller's contract.
    let len = unsafe { len(block) };
    // SAFETY: `block` is the start of a boxed slice of LEN + len bytes (the caller's contract).
    drop(unsafe {
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            block.as_ptr(),
            LEN + len,
        ))
    });
}
