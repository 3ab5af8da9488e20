// busd — Node.js client for busd (BUSP/1). See README.md.
export { connect, Bus, Subscription, Event, DEFAULT_ENDPOINT, FEATURES } from './lib/client.js'
export { BusdError, DeadLetter } from './lib/errors.js'
