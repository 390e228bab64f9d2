/**
 * `rejection(promise)`: what `promise` rejects with, for tests that assert on the error's code and
 * fields; a promise that resolves fails the test.
 */

export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}
