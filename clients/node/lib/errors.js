// errors.js — what the client throws, and what a handler throws to ask for
// a dead letter. Kept apart from client.js so applications and the
// type declarations can import them without the socket code.

// An answer from the broker (REJECT, SUBEND, ERROR, CTLREPLY) or a local
// condition with the protocol's code for it (400 invalid topic, 408 timed
// out, 413 too large, 429 local queue full, 503 closed or shutting down).
export class BusdError extends Error {
  constructor (code, reason, context) {
    super(`${code} ${reason}`)
    this.name = 'BusdError'
    this.code = code
    this.reason = reason
    if (context !== undefined) this.context = context
  }
}

// Thrown by a handler (or given to event.deadLetter()) to dead-letter the
// event at once, with `reason` as its x-reason header, instead of retrying.
export class DeadLetter extends Error {
  constructor (reason = 'dead-lettered by subscriber') {
    super(reason)
    this.name = 'DeadLetter'
    this.reason = reason
  }
}
