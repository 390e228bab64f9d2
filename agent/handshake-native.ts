/**
 * The agent's handshake cryptography for STEVE: agent/native/handshake.c in the one native addon, behind
 * the server's `ServerHandshake` (steve/server/server.ts), which agent.ts passes to the STEVE server. Per
 * X25519 handshake: one native call for the server's key pair and the shared secret (node:crypto makes a
 * KeyObject for each key and a JWK round trip for each public key), one for the transcript's SHA-256, and
 * one for the whole key schedule, its seven outputs in one new ArrayBuffer (node:crypto makes an Hmac
 * object and a Buffer per HMAC, eight of each).
 *
 * Measured (`node bench/handshake-crypto.mjs`, one run, warm and in one process): the three steps of an
 * X25519 handshake in 86 us against node:crypto's 127 (0.68): the X25519 answer 91 against 114 (most of it
 * OpenSSL's two scalar multiplications either way), the key schedule 6.7 against 27.7. In the agent under
 * handshake load the gap is wider, since each KeyObject, Hmac and Buffer node:crypto makes is also garbage
 * to collect (README "Speed").
 *
 * It is the OpenSSL inside node, so the results are node:crypto's: handshake-native.test.ts checks the
 * schedule and the transcript hash against the protocol's (noble) and RFC 5869's vectors, and the
 * exchange against the client's side and RFC 7748's low-order points. The private key is generated inside
 * OpenSSL and freed there; the shared secret is written into an ArrayBuffer of its own (outside V8's
 * heap) and zeroed by the schedule, as with node:crypto (test/steve/secret-wipe.test.ts reads a running
 * agent's memory for it). With randomness other than the system's (tests' fixed bytes) the exchange is
 * node:crypto's, which takes its private scalar from `random`.
 *
 * No fallback: without the addon `loadNativeHandshake` throws AGENT_NATIVE_UNAVAILABLE and the agent does
 * not start (as for AES-GCM, aes-gcm-native.ts).
 */

// steve/server only (not steve/index.js, which would load the client at start-up: steve/server/index.ts).
import {
  SESSION_KEY_SCHEDULE,
  SteveError,
  assertBytes,
  nodeRandomBytes,
  nodeX25519Exchange,
  transcript,
  withScheduleInputs,
  type ServerHandshake,
  type KeyExchange,
  type SessionKeys,
} from '../steve/server/index.js';
import { agentNativePart } from './native-part.js';

const X25519_BYTES = 32;
const SHA256_BYTES = 32;

/** What agent/native/handshake.c exports. */
interface HandshakeNative {
  x25519Respond(clientPublic: Uint8Array, serverPublicOut: Uint8Array, sharedOut: Uint8Array): void;
  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, infos: readonly Uint8Array[], outs: readonly Uint8Array[]): void;
  sha256(data: Uint8Array, out: Uint8Array): void;
}

/** The schedule's labels as bytes, made once, and the length of all seven outputs together. */
const LABELS = SESSION_KEY_SCHEDULE.map(({ label }) => Buffer.from(label, 'latin1'));
const SCHEDULE_BYTES = SESSION_KEY_SCHEDULE.reduce((sum, { length }) => sum + length, 0);

/** `length` bytes in an ArrayBuffer of their own (outside V8's heap). */
const own = (length: number): Uint8Array => new Uint8Array(new ArrayBuffer(length));

let cached: ServerHandshake | undefined;

/** The native handshake, loaded once; AGENT_NATIVE_UNAVAILABLE when the addon is missing or lacks it. */
export function loadNativeHandshake(): ServerHandshake {
  if (cached !== undefined) return cached;
  const crypto = agentNativePart<HandshakeNative>('handshake', 'agent/native/handshake.c', 'the handshake', (part) => typeof part.x25519Respond === 'function');

  const x25519: KeyExchange = Object.freeze({
    ...nodeX25519Exchange,
    serverRespond(clientMaterial: Uint8Array, random: (length: number) => Uint8Array) {
      if (random !== nodeRandomBytes) return nodeX25519Exchange.serverRespond(clientMaterial, random);
      assertBytes(clientMaterial, 'clientMaterial', X25519_BYTES, 'STEVE_KEY');
      const serverMaterial = own(X25519_BYTES);
      const sharedSecret = own(X25519_BYTES);
      try {
        crypto.x25519Respond(clientMaterial, serverMaterial, sharedSecret);
      } catch (cause) {
        // A low-order client key (an all-zero result) is the client's fault, as with node:crypto's exchange.
        if ((cause as { code?: string }).code === 'STEVE_KEY') throw new SteveError('STEVE_KEY', 'X25519 failed', { cause });
        throw cause;
      }
      return { serverMaterial, sharedSecret };
    },
  });

  cached = Object.freeze({
    x25519,
    transcriptHash(input) {
      const out = own(SHA256_BYTES);
      crypto.sha256(transcript(input), out);
      return out;
    },
    deriveSessionKeys(sharedSecret, transcriptHash) {
      // The same checks, copies and wipes as node:crypto's schedule (steve/server/kdf-node.ts).
      return withScheduleInputs(sharedSecret, transcriptHash, (secret, salt) => {
        // One buffer for all seven outputs; each key is a view of its own range (wipeSessionKeys zeroes each).
        const buffer = new ArrayBuffer(SCHEDULE_BYTES);
        const outs: Uint8Array[] = [];
        for (let i = 0, at = 0; i < SESSION_KEY_SCHEDULE.length; at += SESSION_KEY_SCHEDULE[i]!.length, i++) {
          outs.push(new Uint8Array(buffer, at, SESSION_KEY_SCHEDULE[i]!.length));
        }
        crypto.hkdfSha256(secret, salt, LABELS, outs);
        const keys: Partial<SessionKeys> = {};
        SESSION_KEY_SCHEDULE.forEach(({ name }, i) => (keys[name] = outs[i]!));
        return keys as SessionKeys;
      });
    },
  } satisfies ServerHandshake);
  return cached;
}
