#!/usr/bin/env python3
"""Clients of `gptrain serve` for tests/cli/serve_test.sh, Python's standard library only.

  book URL PROMPT            the book's ollama_evaluate.py query: its payload to /api/chat
                             (model "llama3", seed 123, temperature 0, at the top level as the script
                             sends them), the JSON-lines stream read line by line with urllib and each
                             message.content joined, exactly as the script reads it; prints the text
  book-notebook URL PROMPT   the chapter's notebook form: seed, temperature 0 and num_ctx 2048 in options
  openai URL MODEL PROMPT    the openai package (pip), a streamed chat completion; exit 77 without it
  post URL PATH BODY [KEY]   one POST; prints "STATUS BODY" (BODY "@big:N" sends N bytes of 'a')
  raw URL BYTES              raw bytes on a socket (malformed HTTP); prints the status line or "closed"
  disconnect URL             starts a long stream, reads two events, closes the socket, and waits until
                             /health shows nothing running (the server cancelled it); prints the seconds
"""
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def query_model(prompt, model="llama3", url="http://localhost:11434/api/chat", notebook=False):
    if notebook:
        data = {"model": model, "messages": [{"role": "user", "content": prompt}],
                "options": {"seed": 123, "temperature": 0, "num_ctx": 2048}}
    else:
        data = {"model": model, "seed": 123, "temperature": 0, "messages": [{"role": "user", "content": prompt}]}
    payload = json.dumps(data).encode("utf-8")
    request = urllib.request.Request(url, data=payload, method="POST")
    request.add_header("Content-Type", "application/json")
    response_data = ""
    with urllib.request.urlopen(request) as response:
        while True:
            line = response.readline().decode("utf-8")
            if not line:
                break
            response_json = json.loads(line)
            response_data += response_json["message"]["content"]
    return response_data


def post(url, path, body, key=None):
    data = ("a" * int(body[5:])).encode() if body.startswith("@big:") else body.encode("utf-8")
    request = urllib.request.Request(url + path, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def health(url):
    with urllib.request.urlopen(url + "/health", timeout=10) as r:
        return json.loads(r.read())


def main():
    cmd, url = sys.argv[1], sys.argv[2].rstrip("/")
    if cmd in ("book", "book-notebook"):
        print(json.dumps({"text": query_model(sys.argv[3], url=url + "/api/chat", notebook=cmd == "book-notebook")}))
    elif cmd == "openai":
        try:
            import openai
        except ImportError:
            print("the openai package is not installed (pip install openai)")
            sys.exit(77)
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
        stream = client.chat.completions.create(model=sys.argv[3], messages=[{"role": "user", "content": sys.argv[4]}],
                                                temperature=0, max_tokens=20, stream=True)
        text, finish = "", None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        print(json.dumps({"text": text, "finish_reason": finish, "openai": openai.__version__}))
    elif cmd == "post":
        status, body = post(url, sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
        print(status, body)
    elif cmd == "raw":
        u = urllib.parse.urlparse(url)
        s = socket.create_connection((u.hostname, u.port), timeout=10)
        s.sendall(sys.argv[3].encode("latin-1").decode("unicode_escape").encode("latin-1"))
        try:
            reply = s.recv(4096).decode("latin-1")
            print(reply.split("\r\n")[0] if reply else "closed")
        except (ConnectionResetError, socket.timeout):
            print("closed")
        s.close()
    elif cmd == "disconnect":
        u = urllib.parse.urlparse(url)
        body = json.dumps({"prompt": "Every effort moves you", "max_tokens": 2000, "temperature": 0,
                           "ignore_eos": True, "stream": True}).encode()
        s = socket.create_connection((u.hostname, u.port), timeout=30)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        seen = b""
        while seen.count(b"data: ") < 2:
            seen += s.recv(4096)
        running = health(url)["running"]
        s.close()
        t0 = time.time()
        while health(url)["running"] > 0:
            if time.time() - t0 > 10:
                print("still running 10 s after the client left")
                sys.exit(1)
            time.sleep(0.05)
        print(json.dumps({"running_before": running, "cancelled_after_s": round(time.time() - t0, 3)}))


if __name__ == "__main__":
    main()
