/**
 * Bench only: NSM answers as QEMU's emulated NSM gives them (specs/nsm.md §4), built in process with the
 * project's codec over the build (dist/nsm/): attestation documents are unsigned (protected header
 * {1: -1}, zero certificate, cabundle and signature), so nothing can mistake them for a real enclave's,
 * and they cost the process only their CBOR. Two users:
 * - bench/lib/fake-nsm-device.mjs, the device path's start-up without /dev/nsm;
 * - the agent role's `--nsm unsigned` (bench/lib/roles.mjs): the agent's own CPU per handshake measured
 *   directly, with no signing in its process to subtract (bench/compare.mjs).
 * The codec is imported on the first answer, so a process that never asks pays nothing at start-up.
 */

let codec;

/** The CBOR answer to one NSM request (specs/nsm.md §2). */
export async function unsignedNsmAnswer(requestBytes) {
  codec ??= await Promise.all([import('../../dist/nsm/codec.js'), import('../../dist/nsm/document.js'), import('../../dist/cbor/index.js')]);
  const [{ decodeNsmRequest, encodeNsmResponse }, { encodeAttestationDocument, encodeDocumentPayload }, { encodeCbor }] = codec;
  let request;
  try {
    request = decodeNsmRequest(requestBytes);
  } catch {
    return encodeNsmResponse({ type: 'Error', error: 'InvalidOperation' });
  }
  const zeros = (n) => new Uint8Array(n);
  switch (request.type) {
    case 'DescribeNSM':
      return encodeNsmResponse({ type: 'DescribeNSM', description: { versionMajor: 1, versionMinor: 0, versionPatch: 0, moduleId: 'i-00000000000000000-enc0000000000000000', maxPcrs: 32, lockedPcrs: [], digest: 'SHA384' } });
    case 'GetRandom':
      return encodeNsmResponse({ type: 'GetRandom', random: crypto.getRandomValues(zeros(256)) });
    case 'DescribePCR':
      return encodeNsmResponse({ type: 'DescribePCR', pcr: { lock: request.index < 16, data: zeros(48) } });
    case 'Attestation': {
      const payload = encodeDocumentPayload({ moduleId: 'i-00000000000000000-enc0000000000000000', timestamp: Date.now(), pcrs: new Map(), certificate: zeros(64), cabundle: [zeros(64)], publicKey: request.publicKey, userData: request.userData, nonce: request.nonce });
      return encodeNsmResponse({ type: 'Attestation', document: encodeAttestationDocument(encodeCbor(new Map([[1, -1]])), payload, zeros(64)) });
    }
    default:
      return encodeNsmResponse({ type: 'Error', error: 'InvalidOperation' });
  }
}
