/**
 * The answer's body on its way from the STEVE client to the page, inside the worker. With streams
 * (steve/protocol/stream.md) the client's body delivers each record's bytes once that record opened and
 * errors when a later one fails or the answer breaks off (ABORT, truncation). The worker must hand that
 * over as it comes: it never reads the body whole, never copies or queues it, and never turns an error
 * into an end, because the page would then take a broken answer for a complete one.
 *
 * `passBody` reads the client's body only when the page asks for more (a pull source with no queue of its
 * own, highWaterMark 0), so backpressure reaches the client and through it the enclave (stream.md §5);
 * an error errors the page's stream with that same error (the page's read fails; in a browser the
 * page sees it as a network TypeError) and is reported once to `onError`, for the worker's status; the
 * page cancelling its read cancels the client's body, which ends the exchange.
 */

/** The page's body for `body`: the same chunks, in order, pulled on demand; null stays null. */
export function passBody(body: ReadableStream<Uint8Array> | null, onError: (error: unknown) => void): ReadableStream<Uint8Array> | null {
  if (body === null) return null;
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let result: ReadableStreamReadResult<Uint8Array>;
        try {
          result = await reader.read();
        } catch (error) {
          onError(error);
          controller.error(error);
          return;
        }
        if (result.done) controller.close();
        else controller.enqueue(result.value);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
