#!/usr/bin/python3
"""crm_server.py - stands in for the CRM in the signup example.

Accepts POST /contacts with a JSON user and prints what it received.  With
--ascii-only it has the bug the example needs: it rejects any name that is
not plain ASCII with 400, a final answer, so busd dead-letters the event.
Restarting it without the flag is "deploying the fix"; the dead letter can
then be replayed.  It answers GET /contacts with everything it stored.
"""
import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

contacts = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive, as busd's webhook expects

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path != "/contacts":
            return self.reply(404, {"error": "no such path"})
        self.reply(200, contacts)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/contacts":
            return self.reply(404, {"error": "no such path"})
        if self.headers.get("Authorization") != "Bearer example-token":
            return self.reply(401, {"error": "bad token"})
        msg_id = self.headers.get("X-Busd-Msg-Id", "-")
        attempt = self.headers.get("X-Busd-Attempt", "?")
        try:
            user = json.loads(body)
            name = user["name"]
        except (ValueError, KeyError, TypeError):
            print("CRM: 400 for %s: not a user: %r" % (msg_id, body), flush=True)
            return self.reply(400, {"error": "body must be a JSON user with a name"})
        if self.server.ascii_only and not name.isascii():
            print("CRM: 400 for %s: cannot store name %r (the ASCII-only bug)" % (msg_id, name),
                  flush=True)
            return self.reply(400, {"error": "name must be ASCII"})
        if any(c["msg_id"] == msg_id for c in contacts):
            print("CRM: %s already stored; 200 again" % msg_id, flush=True)
            return self.reply(200, {"status": "exists"})
        contacts.append({"msg_id": msg_id, "user": user})
        print("CRM: stored contact %s <%s> (msg_id %s, attempt %s)"
              % (name, user.get("email", "?"), msg_id, attempt), flush=True)
        self.reply(201, {"status": "created"})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8471)
    parser.add_argument("--ascii-only", action="store_true",
                        help="reject non-ASCII names with 400 (the bug)")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.ascii_only = args.ascii_only
    print("CRM: listening on http://127.0.0.1:%d/contacts%s"
          % (args.port, " (ASCII names only)" if args.ascii_only else ""), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
