/**
 * replies.ts: the one table from SteveError codes to outer answers holds every code, and its bodies are
 * exactly the small JSON objects of specs/steve.md §6-§7 with the statuses there.
 */

import { describe, expect, it } from 'vitest';
import { STEVE_ERROR_CODES, SteveError } from '../errors.js';
import { REPLY_FOR_CODE, ReplyError, SERVER_REPLIES, replyFor } from './replies.js';

describe('the answer table', () => {
  it('maps every SteveError code', () => {
    for (const code of STEVE_ERROR_CODES) expect(REPLY_FOR_CODE[code], code).toBeDefined();
    expect(Object.keys(REPLY_FOR_CODE).sort()).toEqual([...STEVE_ERROR_CODES].sort());
  });

  it('has the exact bodies and statuses of §6-§7', () => {
    const expected: Record<string, [number, string]> = {
      STEVE_PROTOCOL: [400, '{"error":"protocol_error"}'],
      STEVE_SUITE: [400, '{"error":"protocol_error"}'],
      STEVE_KEY: [400, '{"error":"protocol_error"}'],
      STEVE_DECRYPT: [401, '{"error":"session_invalid"}'],
      STEVE_SESSION_INVALID: [401, '{"error":"session_invalid"}'],
      STEVE_REPLAY: [409, '{"error":"replay"}'],
      STEVE_SESSION_UNCONFIRMED: [425, '{"error":"session_unconfirmed"}'],
      STEVE_BUSY: [429, '{"error":"busy"}'],
      STEVE_TOO_LARGE: [413, '{"error":"too_large"}'],
      STEVE_BINDING: [500, '{"error":"internal"}'],
      STEVE_BAD_ARGUMENT: [500, '{"error":"internal"}'],
    };
    for (const [code, [status, body]] of Object.entries(expected)) {
      const reply = replyFor(new SteveError(code as never, 'detail that must not leak'));
      expect(reply.status, code).toBe(status);
      expect(reply.body.toString(), code).toBe(body);
    }
    expect(SERVER_REPLIES.e2eRequired.body.toString()).toBe('{"error":"e2e_required"}');
    expect(SERVER_REPLIES.e2eRequired.status).toBe(403);
    expect(replyFor(new ReplyError(SERVER_REPLIES.timeout, 'x')).status).toBe(408);
    // Anything else is an internal error, never its message.
    const internal = replyFor(new Error('secret detail'));
    expect(internal.status).toBe(500);
    expect(internal.body.toString()).toBe('{"error":"internal"}');
  });
});
