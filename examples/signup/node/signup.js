// signup.js — the application: publishes user.created for each sign-up and
// moves on. Each event's id (`signup-N`) is its msg_id: the broker drops a
// repeated publish, and every subscriber can recognise an event it handled.
import { service, log } from './common.js'

const users = [
  { name: 'Alice', email: 'alice@example.com' },
  { name: 'Bob', email: 'bob@example.com' },
  { name: 'Carol', email: 'carol@example.com' },
  { name: 'Zoë', email: 'zoe@example.com' }, // the CRM refuses non-ASCII names
  { name: 'Mallory' }, // no email address: the mailer cannot help
]

const bus = await service('signup-api')
await Promise.all(users.map((user, i) => {
  const id = `signup-${i + 1}`
  log('signup', `publish user.created ${id} ${JSON.stringify(user)}`)
  return bus.publish('user.created', user, { id, headers: { source: 'web' } })
}))
log('signup', `${users.length} sign-ups accepted by the broker`)
await bus.close()
