/**
 * The agent's AES-256-GCM for STEVE: agent/native/aes-gcm.c in the one native addon, behind the server's
 * `ServerAead` (steve/server/aead-node.ts), which agent.ts passes to the STEVE server. One native call per
 * record, into a buffer allocated here, against node:crypto's five calls and a Cipheriv object per record.
 *
 * Measured (`node bench/aead.mjs`, this machine, one run): a 13-byte record sealed in 1.0 us against 3.9
 * with nodeAesGcm and opened in 0.9 against 3.5; a 64 KiB record sealed in 21 us against 90 (node:crypto
 * hands back its output in a new buffer, which is then copied behind the frame header) and opened in 18 against 25.
 * It is the OpenSSL inside node, so the bytes are node:crypto's: aes-gcm-native.test.ts checks them against
 * McGrew-Viega's vectors, nodeAesGcm and noble.
 *
 * No fallback: without the addon `loadNativeAesGcm` throws AGENT_NATIVE_UNAVAILABLE and the agent does not
 * start (the addon is built by `npm ci`, and the image carries it).
 */

// steve/server only (not steve/index.js, which would load the client at start-up: steve/server/index.ts).
import { assertAeadArguments, assertBytes, outsideHeap, type ServerAead } from '../steve/server/index.js';
import { agentNativePart } from './native-part.js';

/** AES-256-GCM's tag (specs/steve.md §1); the addon reports its own, and they must agree. */
const TAG_BYTES = 16;

/** What agent/native/aes-gcm.c exports. */
interface AesGcmNative {
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array | readonly Uint8Array[], out: Uint8Array, offset: number): void;
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, out: Uint8Array): boolean;
  TAG_BYTES: number;
}

/**
 * The nonce and AAD are copied into these, outside V8's heap, before the native call (aead-node.ts's
 * outsideHeap says why); each call fills and is done with them before it returns.
 */
const NONCE_SCRATCH = Buffer.alloc(12);
/** Room for the protocol's AADs (v2 records 39 bytes, stream records 46); a longer one is passed as it is. */
const AAD_SCRATCH = Buffer.alloc(64);

/** The total length of the pieces, each checked to be a Uint8Array. */
function piecesLength(pieces: readonly Uint8Array[]): number {
  let total = 0;
  for (const piece of pieces) {
    assertBytes(piece, 'plaintext');
    total += piece.length;
  }
  return total;
}

let cached: ServerAead | undefined;

/** The native AES-256-GCM, loaded once; AGENT_NATIVE_UNAVAILABLE when the addon is missing or lacks it. */
export function loadNativeAesGcm(): ServerAead {
  if (cached !== undefined) return cached;
  const aes = agentNativePart<AesGcmNative>('aesGcm', 'agent/native/aes-gcm.c', 'AES-256-GCM', (part) => part.TAG_BYTES === TAG_BYTES);

  /**
   * prefix || ciphertext || tag of `plaintext` (one piece or several) in one new buffer, a plain
   * Uint8Array view as nodeAesGcm gives (a Buffer would compare and print differently).
   */
  function sealInto(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array | readonly Uint8Array[], length: number, prefix: Uint8Array): Uint8Array {
    assertAeadArguments(key, nonce, aad);
    assertBytes(prefix, 'prefix');
    // Every byte is written (prefix here, the rest by the seal), so it need not be zeroed first.
    const out = Buffer.allocUnsafe(prefix.length + length + TAG_BYTES);
    out.set(prefix, 0);
    aes.seal(key, outsideHeap(nonce, NONCE_SCRATCH), outsideHeap(aad, AAD_SCRATCH), plaintext, out, prefix.length);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }

  /** A single plaintext's length, checked to be a Uint8Array. */
  function single(plaintext: Uint8Array): number {
    assertBytes(plaintext, 'plaintext');
    return plaintext.length;
  }

  const EMPTY = new Uint8Array(0);
  cached = Object.freeze({
    seal(key, nonce, aad, plaintext) {
      return sealInto(key, nonce, aad, plaintext, single(plaintext), EMPTY);
    },
    sealPrefixed(key, nonce, aad, plaintext, prefix) {
      return sealInto(key, nonce, aad, plaintext, single(plaintext), prefix);
    },
    sealPrefixedParts(key, nonce, aad, pieces, prefix) {
      return [sealInto(key, nonce, aad, pieces, piecesLength(pieces), prefix)];
    },
    open(key, nonce, aad, sealed) {
      assertAeadArguments(key, nonce, aad);
      assertBytes(sealed, 'sealed');
      if (sealed.length < TAG_BYTES) return null;
      const out = Buffer.allocUnsafe(sealed.length - TAG_BYTES);
      // On a wrong tag the native call has zeroed `out` already; it is dropped here.
      if (!aes.open(key, outsideHeap(nonce, NONCE_SCRATCH), outsideHeap(aad, AAD_SCRATCH), sealed, out)) return null;
      return new Uint8Array(out.buffer, out.byteOffset, out.length);
    },
  } satisfies ServerAead);
  return cached;
}
