"""Runs a size-floor bootstrap once against moto and checks what it sent.

Serves one event from a loopback Lambda Runtime API (the four routes a bootstrap calls), starts
the bootstrap (arm64 ones under `qemu-aarch64 -L /usr/aarch64-linux-gnu`), waits for its answer,
then reads the queue through boto3: the SQS variants pass when the event's body is the message
received. cargo-lambda's emulator builds and runs from source, so it cannot run the weighed file.

    AWS_ENDPOINT_URL=http://127.0.0.1:5055 ... python prove_send.py target/lambda/<bin>/bootstrap
"""
import json, os, subprocess, sys, threading, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

PREFIX = "/2018-06-01/runtime"


def main(bootstrap: str) -> int:
    name = os.path.basename(os.path.dirname(bootstrap))
    body = f"size-floor {name} {uuid.uuid4()}"
    event = json.dumps({"body": body}).encode()
    done, answer = threading.Event(), {}
    served = []

    class Api(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def do_GET(self):
            if self.path != f"{PREFIX}/invocation/next" or served:
                done.wait()  # one event only: hold the next poll until the run ends
                return
            served.append(1)
            self.send_response(200)
            for k, v in (("Lambda-Runtime-Aws-Request-Id", "req-1"), ("Lambda-Runtime-Deadline-Ms", "9999999999999"),
                         ("Lambda-Runtime-Invoked-Function-Arn", f"arn:aws:lambda:us-east-1:000000000000:function:{name}"),
                         ("Content-Length", str(len(event)))):
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(event)

        def do_POST(self):
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer.update(path=self.path, body=data.decode())
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            done.set()

    api = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()

    sqs, sm = boto3.client("sqs"), boto3.client("secretsmanager")
    queue_url = sqs.create_queue(QueueName=f"size-floor-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    secret_id = f"size-floor-{uuid.uuid4().hex[:12]}"
    sm.create_secret(Name=secret_id, SecretString="whsec_size_floor")
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.server_port}", QUEUE_URL=queue_url,
               SECRET_ID=secret_id, AWS_LAMBDA_FUNCTION_NAME=name, AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{name}",
               AWS_LAMBDA_LOG_STREAM_NAME="size-floor")
    arm64 = b"aarch64" in subprocess.run(["file", "-b", bootstrap], capture_output=True).stdout
    cmd = (["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"] if arm64 else []) + [bootstrap]
    proc = subprocess.Popen(cmd, env=env)
    try:
        ok = done.wait(120)
    finally:
        proc.terminate()
        proc.wait()
        done.set()
        api.shutdown()
    got = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
    sqs.delete_queue(QueueUrl=queue_url)
    sm.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
    print(json.dumps({"bootstrap": bootstrap, "arm64": arm64, "answered": ok, "answer": answer,
                      "queue_bodies": [m["Body"] for m in got]}))
    if not ok or not answer["path"].endswith("/response"):
        return 1
    if name == "runtime-only":
        return 0 if json.loads(answer["body"]) == {"body": body} else 1
    return 0 if [m["Body"] for m in got] == [body] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
