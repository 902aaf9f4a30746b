// noukai-stream.js: stream a Noukai flow's events from your own server to the page.
//
// Dependency-free ES module. It POSTs JSON to a passthrough endpoint (which
// `EventSource` cannot do: no body, no custom headers), reads the
// `text/event-stream` response from `fetch`, and calls you back per event.
//
//   import { streamFlow } from "/noukai/noukai-stream.js";
//   const run = streamFlow("/noukai/flows/hello-world", {
//     message: "Hi",
//     on: { step_completed: (data) => show(data), flow_completed: (data) => done(data) },
//     onError: (err) => console.error(err.status, err.code, err.message),
//   });
//   run.abort();              // stops reading; the server cancels the run upstream
//   const outcome = await run.done;  // {status: "completed" | "error" | "aborted", error?}
//
// Invariants: every callback runs at most once per event, in stream order;
// `onError` runs at most once; `done` always settles (never rejects).

const EVENT_TYPE_SEPARATORS = /\r\n|\r|\n/;

/**
 * Incremental SSE parser (WHATWG line rules: LF, CRLF or CR; comments; multi-line
 * data): feed text, get {type, data, id} frames. `id` is the frame's own `id:`
 * field, or null when it has none (not EventSource's sticky lastEventId).
 */
export class SSEParser {
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.type = "";
    this.data = [];
    this.id = null;
  }

  feed(text, final = false) {
    this.buffer += text;
    for (;;) {
      const match = EVENT_TYPE_SEPARATORS.exec(this.buffer);
      if (!match) break;
      // A lone CR at the very end may be the first half of CRLF: wait for more.
      if (!final && match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      if (this.data.length) {
        this.onFrame({ type: this.type || "message", data: this.data.join("\n"), id: this.id });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return; // comment: a heartbeat
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

async function readError(response) {
  let code = "HTTP_" + response.status;
  let message = response.statusText || "Request failed";
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch (_) {
    // not JSON: keep the status-derived code
  }
  return { status: response.status, code, message };
}

/**
 * Start a flow through a passthrough endpoint and stream its events.
 *
 * options: message, parameters, body (a whole JSON body instead of message +
 * parameters), headers, credentials, signal (an outside AbortSignal),
 * on ({event_type: (data, frame) => void}), onEvent((type, data, frame) => void),
 * onError(({status, code, message}) => void), onOpen((response) => void).
 */
export function streamFlow(url, options = {}) {
  const controller = new AbortController();
  if (options.signal) {
    if (options.signal.aborted) controller.abort();
    else options.signal.addEventListener("abort", () => controller.abort(), { once: true });
  }
  const run = { sessionId: null, abort: () => controller.abort() };
  let errored = false;
  const fail = (error) => {
    if (errored) return;
    errored = true;
    if (options.onError) options.onError(error);
  };
  const dispatch = (type, data, frame) => {
    const handler = options.on && options.on[type];
    if (handler) handler(data, frame);
    if (options.onEvent) options.onEvent(type, data, frame);
  };

  run.done = (async () => {
    let finished = false;
    try {
      const body = options.body || { message: options.message, parameters: options.parameters || {} };
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", ...(options.headers || {}) },
        body: JSON.stringify(body),
        credentials: options.credentials || "same-origin",
        signal: controller.signal,
      });
      run.sessionId = response.headers.get("X-Noukai-Session");
      if (!response.ok) {
        const error = await readError(response);
        fail(error);
        return { status: "error", error };
      }
      if (options.onOpen) options.onOpen(response);
      let streamError = null;
      const parser = new SSEParser((frame) => {
        let data;
        try {
          data = JSON.parse(frame.data);
        } catch (_) {
          return; // a malformed frame is skipped, the stream goes on
        }
        if (frame.type === "error") {
          streamError = { status: response.status, code: (data && data.code) || "STREAM_ERROR",
                          message: (data && data.message) || "The flow failed." };
          return;
        }
        if (frame.type === "flow_completed") finished = true;
        if (frame.type === "step_error") {
          // A failed block ends the run (no flow_completed follows).
          const code = (data && data.error && data.error.code) || "STEP_FAILED";
          streamError = { status: response.status, code, message: "A step of the flow failed.",
                          stepId: data && data.stepId };
        }
        dispatch(frame.type, data, frame);
      });
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
      parser.feed(decoder.decode(), true);
      if (streamError) {
        fail(streamError);
        return { status: "error", error: streamError };
      }
      if (!finished) {
        const error = { status: response.status, code: "STREAM_INCOMPLETE",
                        message: "The stream ended before the flow completed." };
        fail(error);
        return { status: "error", error };
      }
      return { status: "completed" };
    } catch (exc) {
      if (controller.signal.aborted) return { status: "aborted" };
      const error = { status: 0, code: "NETWORK_ERROR", message: String((exc && exc.message) || exc) };
      fail(error);
      return { status: "error", error };
    }
  })();
  return run;
}
