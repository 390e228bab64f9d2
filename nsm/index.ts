/**
 * The NSM layer's public surface: the `Nsm` interface with its two implementations (the device behind
 * /dev/nsm and the explicitly chosen mock), the request/document codecs, and the verifier.
 *
 * Browser-safe parts (codec, document, verifier, encodings) are also exported from `nsm/verifier.ts`,
 * which pulls in no `node:` module; import that from client code.
 */

export * from './verifier.js';
export { createNsm, openNsm, type NsmMode, type OpenNsmOptions } from './runtime.js';
export { openDeviceTransport, rawDeviceRequest, DEFAULT_NSM_DEVICE_PATH } from './device.js';
export { createMockTransport, openMockNsm, defaultMockPcrs, type MockNsmOptions, type MockNsmLogger } from './mock.js';
export { createMockPki, renewMockLeaf, writeMockPki, loadMockPki, MOCK_LEAF_LIFETIME_MS, type MockPki, type MockCertificate } from './mock-pki.js';
export { nodeP384Verifier } from './ecdsa-node.js';
export { createMockSignedDeviceTransport, type MockSignedDeviceOptions } from './mock-signed-device.js';
