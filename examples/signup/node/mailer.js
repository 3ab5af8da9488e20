// mailer.js — sends the welcome mail. Runs as several instances in the
// queue group "mailer": each sign-up is mailed by one of them, at least once.
//
// Like an SMTP relay that greylists, the first attempt for each address
// fails (the handler throws: NACK, and busd redelivers after its backoff
// with attempt 2, possibly to the other instance). A sign-up without an
// email address can never be mailed: DeadLetter parks it at once. Sending
// is idempotent on msgId (state files shared by the instances), because a
// redelivery or a dead-letter replay can bring the same event again.
import { existsSync, writeFileSync, appendFileSync } from 'node:fs'
import { DeadLetter } from '../../../clients/node/index.js'
import { service, file, log } from './common.js'

const me = `mailer-${process.argv[2] || '1'}`
const bus = await service(me)

await bus.subscribe('user.created', async (event) => {
  const user = event.json()
  const id = event.msgId.replace(/[^A-Za-z0-9._-]/g, '_')
  if (existsSync(file(`sent-${id}`))) {
    log(me, `${event.msgId} attempt ${event.attempt}: already sent, nothing to do`)
    return
  }
  if (!user.email) throw new DeadLetter('payload has no "email"')
  if (!existsSync(file(`greylisted-${id}`))) {
    writeFileSync(file(`greylisted-${id}`), '')
    log(me, `${event.msgId} attempt ${event.attempt}: greylisted, try again later`)
    throw new Error('421 greylisted')
  }
  appendFileSync(file('outbox.log'), `welcome mail to ${user.email} (${event.msgId}, attempt ${event.attempt}, ${me})\n`)
  writeFileSync(file(`sent-${id}`), '')
  log(me, `${event.msgId} attempt ${event.attempt}: sent to ${user.email}`)
}, { group: 'mailer', max_deliver: 5 })
log(me, 'ready')
