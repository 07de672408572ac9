//! The embedded in-memory store (placeholder until the store work lands).

/// The embedded store: sharded maps with LRU eviction under a memory limit.
pub struct MemoryStore {
    _limit: usize,
}

// Placeholder bodies; the store work replaces this whole file.
#[allow(unused_variables)]
impl super::Store for MemoryStore {
    async fn get(&self, keys: &[bytes::Bytes]) -> super::StoreResult<Vec<Option<super::Item>>> {
        todo!()
    }
    async fn set(
        &self,
        key: bytes::Bytes,
        item: super::Item,
    ) -> super::StoreResult<super::StoreOutcome> {
        todo!()
    }
    async fn add(
        &self,
        key: bytes::Bytes,
        item: super::Item,
    ) -> super::StoreResult<super::StoreOutcome> {
        todo!()
    }
    async fn replace(
        &self,
        key: bytes::Bytes,
        item: super::Item,
    ) -> super::StoreResult<super::StoreOutcome> {
        todo!()
    }
    async fn append(
        &self,
        key: bytes::Bytes,
        data: bytes::Bytes,
        version: crate::clock::Timestamp,
    ) -> super::StoreResult<super::StoreOutcome> {
        todo!()
    }
    async fn prepend(
        &self,
        key: bytes::Bytes,
        data: bytes::Bytes,
        version: crate::clock::Timestamp,
    ) -> super::StoreResult<super::StoreOutcome> {
        todo!()
    }
    async fn cas(
        &self,
        key: bytes::Bytes,
        item: super::Item,
        expected: u64,
    ) -> super::StoreResult<super::StoreOutcome> {
        todo!()
    }
    async fn delete(
        &self,
        key: bytes::Bytes,
        version: crate::clock::Timestamp,
    ) -> super::StoreResult<bool> {
        todo!()
    }
    async fn incr(
        &self,
        key: bytes::Bytes,
        delta: u64,
        version: crate::clock::Timestamp,
    ) -> super::StoreResult<super::ArithOutcome> {
        todo!()
    }
    async fn decr(
        &self,
        key: bytes::Bytes,
        delta: u64,
        version: crate::clock::Timestamp,
    ) -> super::StoreResult<super::ArithOutcome> {
        todo!()
    }
    async fn touch(
        &self,
        key: bytes::Bytes,
        expires_at: super::ExpiresAt,
        version: crate::clock::Timestamp,
    ) -> super::StoreResult<bool> {
        todo!()
    }
    async fn gat(
        &self,
        keys: &[bytes::Bytes],
        expires_at: super::ExpiresAt,
        version: crate::clock::Timestamp,
    ) -> super::StoreResult<Vec<Option<super::Item>>> {
        todo!()
    }
    async fn flush_all(&self, cutoff: crate::clock::Timestamp) -> super::StoreResult<()> {
        todo!()
    }
    async fn stats(&self) -> super::StoreStats {
        todo!()
    }
}
