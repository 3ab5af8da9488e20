// topic.js — the topic and pattern grammar of doc/protocol.md §2.1, checked
// on the byte length a str8 carries (1..255 bytes), so a bad topic fails in
// the caller's stack with a message naming it instead of coming back later
// as a REJECT 400 or, for over-long ones, being impossible to encode.

function tokenOk (buf, start, end) {
  if (end === start) return false
  for (let i = start; i < end; i++) {
    const c = buf[i]
    if (c < 0x21 || c > 0x7e || c === 0x23 /* # */ || c === 0x2a /* * */) return false
  }
  return true
}

// null when `topic` (a Buffer) is a valid topic, else why not.
export function topicError (buf) {
  if (buf.length < 1 || buf.length > 255) return `is ${buf.length} bytes (1..255 allowed)`
  let start = 0
  for (let i = 0; i <= buf.length; i++) {
    if (i === buf.length || buf[i] === 0x2e) {
      if (!tokenOk(buf, start, i)) {
        return i === start
          ? 'has an empty token (leading, trailing or doubled ".")'
          : `has an invalid token "${buf.subarray(start, i).toString('latin1')}" ` +
            '(bytes 0x21-0x7E except ".", "*" and "#")'
      }
      start = i + 1
    }
  }
  return null
}

// null when `pattern` (a Buffer) is a valid pattern, else why not.
export function patternError (buf) {
  if (buf.length < 1 || buf.length > 255) return `is ${buf.length} bytes (1..255 allowed)`
  let start = 0
  for (let i = 0; i <= buf.length; i++) {
    if (i === buf.length || buf[i] === 0x2e) {
      const len = i - start
      if (len === 1 && buf[start] === 0x2a) {
        // "*": any one token
      } else if (len === 1 && buf[start] === 0x23) {
        if (i !== buf.length) return '"#" is allowed only as the last token'
      } else if (!tokenOk(buf, start, i)) {
        return len === 0
          ? 'has an empty token (leading, trailing or doubled ".")'
          : `has an invalid token "${buf.subarray(start, i).toString('latin1')}" ` +
            '("*" and "#" only as whole tokens; bytes 0x21-0x7E)'
      }
      start = i + 1
    }
  }
  return null
}
