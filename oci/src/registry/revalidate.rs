//! Revalidation: a client that asks about the same images again and again (the gate's
//! continuous verification re-judges every admitted image on a schedule) keeps what it fetched
//! and asks the registry only whether it still holds:
//!
//! - a manifest by digest: `HEAD` (the digest proves the bytes kept; the answer says whether
//!   the registry still has it);
//! - a manifest by tag (a `.sig` tag): `GET` with `If-None-Match` naming the digest of the bytes
//!   kept; `304 Not Modified` means those bytes are still what the tag names;
//! - a small blob by digest (signature payloads): no request (the digest proves the bytes; the
//!   manifest that names it was revalidated just before).
//!
//! Bounded by entries and by size per entry; when full, an arbitrary entry makes room.

use std::collections::HashMap;
use std::sync::Mutex;

use super::FetchedManifest;

/// Largest blob kept (signature payloads are at most 64 KiB; small configs fit too).
pub(super) const MAX_KEPT_BLOB_BYTES: u64 = 256 * 1024;

/// What a revalidating client keeps, by request URL.
#[derive(Debug)]
pub(super) struct Revalidation {
    max_entries: usize,
    manifests: Mutex<HashMap<String, FetchedManifest>>,
    blobs: Mutex<HashMap<String, Vec<u8>>>,
}

fn put<V>(map: &Mutex<HashMap<String, V>>, max: usize, key: String, value: V) {
    let mut map = match map.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    if map.len() >= max && !map.contains_key(&key) {
        if let Some(victim) = map.keys().next().cloned() {
            map.remove(&victim);
        }
    }
    map.insert(key, value);
}

fn get<V: Clone>(map: &Mutex<HashMap<String, V>>, key: &str) -> Option<V> {
    match map.lock() {
        Ok(m) => m.get(key).cloned(),
        Err(poisoned) => poisoned.into_inner().get(key).cloned(),
    }
}

impl Revalidation {
    pub(super) fn new(max_entries: usize) -> Revalidation {
        Revalidation {
            max_entries: max_entries.max(1),
            manifests: Mutex::new(HashMap::new()),
            blobs: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn manifest(&self, url: &str) -> Option<FetchedManifest> {
        get(&self.manifests, url)
    }

    pub(super) fn keep_manifest(&self, url: String, fetched: &FetchedManifest) {
        put(&self.manifests, self.max_entries, url, fetched.clone());
    }

    pub(super) fn forget_manifest(&self, url: &str) {
        if let Ok(mut m) = self.manifests.lock() {
            m.remove(url);
        }
    }

    pub(super) fn blob(&self, url: &str) -> Option<Vec<u8>> {
        get(&self.blobs, url)
    }

    pub(super) fn keep_blob(&self, url: String, bytes: &[u8]) {
        if bytes.len() as u64 <= MAX_KEPT_BLOB_BYTES {
            put(&self.blobs, self.max_entries, url, bytes.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn bounded_by_entries_and_blob_size() {
        let r = Revalidation::new(2);
        for i in 0..5 {
            r.keep_blob(format!("u{i}"), b"x");
        }
        assert_eq!(r.blobs.lock().unwrap().len(), 2);
        r.keep_blob("big".into(), &vec![0u8; MAX_KEPT_BLOB_BYTES as usize + 1]);
        assert!(r.blob("big").is_none());
    }
}
