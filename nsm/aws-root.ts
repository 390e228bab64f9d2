/**
 * The pinned trust anchor: AWS Nitro Enclaves Root-G1 (`CN=aws.nitro-enclaves`), the default root of
 * every verification. Pinned twice: the certificate itself, and its DER SHA-256 published by AWS
 * (specs/nsm.md §3), checked when this module loads so the two cannot drift apart.
 */

import { sha256 } from '@noble/hashes/sha2.js';
import { base64ToBytes, bytesToHex } from './encoding.js';

/** DER SHA-256 of the AWS Nitro Enclaves Root-G1 certificate (specs/nsm.md §3). */
export const AWS_NITRO_ROOT_G1_SHA256 = '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b';

/** The certificate, base64 DER, as in AWS's AWS_NitroEnclaves_Root-G1.zip. */
const AWS_NITRO_ROOT_G1_BASE64 =
  'MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTELMAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYDVQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMw' +
  'HhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQLDANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG' +
  'BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZEh8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/' +
  'BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkFR+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYCMQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW' +
  'rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6NIwLz3/Y=';

export const AWS_NITRO_ROOT_G1_DER: Uint8Array = base64ToBytes(AWS_NITRO_ROOT_G1_BASE64, 'AWS root');

// The certificate is used only if it is the one pinned by fingerprint: an edited copy fails at load.
if (bytesToHex(sha256(AWS_NITRO_ROOT_G1_DER)) !== AWS_NITRO_ROOT_G1_SHA256) {
  throw new Error('the embedded AWS Nitro root does not match its pinned SHA-256');
}
