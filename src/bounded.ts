// A Map used as a bounded cache: the one helper the gateways and the viewer share for it.

/**
 * Sets `key` in `cache`, first dropping the oldest entry (insertion order) when `size` entries are
 * there already. FIFO; delete a key before setting it again to make it the newest (LRU).
 */
export function remember<K, V>(cache: Map<K, V>, size: number, key: K, value: V): void {
  if (cache.size >= size && !cache.has(key)) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  cache.set(key, value);
}
