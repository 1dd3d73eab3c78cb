/**
 * The diff step: does the live object already hold everything the desired manifest says?
 *
 * The applied-hash annotation answers "did we already apply this manifest?" in O(1), but not
 * "did someone change it since?" (an edit leaves our annotation alone). So an object is up to
 * date when the hash matches AND every field of the manifest has the same value in the live
 * object. Fields the API server adds (defaults, status, clusterIP…) do not matter: the manifest
 * is compared as a subset. Lists must match element by element (same length), as server-side
 * apply would make them.
 */
export function isSubset(desired: unknown, live: unknown): boolean {
  if (desired === live) return true;
  if (Array.isArray(desired)) {
    return Array.isArray(live) && live.length === desired.length && desired.every((d, i) => isSubset(d, live[i]));
  }
  if (desired !== null && typeof desired === 'object') {
    if (live === null || typeof live !== 'object' || Array.isArray(live)) return false;
    const l = live as Record<string, unknown>;
    return Object.entries(desired as Record<string, unknown>).every(([k, v]) => v === undefined || isSubset(v, l[k]));
  }
  // Quantities and numbers the server may render differently are not used in our manifests'
  // comparable fields except as given; strings and numbers compare exactly.
  return false;
}
