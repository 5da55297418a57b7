// A proxy-wasm HTTP filter written with the AssemblyScript SDK (@solo-io/proxy-runtime), so
// the harness and Envoy can be compared on the ABI paths this SDK uses and Rust's does not.
//
// Plugin configuration: one `key value` pair per line (the SDK has no JSON parser):
//   deny_prefix /admin            requests whose :path starts with it get a local 403
//   add_request_header x-k v      added before the request goes upstream
//   remove_request_header x-k     removed before the request goes upstream
//   add_response_header x-k v     added to the response
//   authz_cluster authz           GET /check on it for /callout; its body becomes x-authz
//   tick_ms 1000                  a tick period; each tick counts `as_ticks`
// An unknown key rejects the configuration (proxy_on_configure returns false).
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext,
  Context,
  registerRootContext,
  FilterHeadersStatusValues,
  GrpcStatusValues,
  LogLevelValues,
  HeaderPair,
  Headers,
  Counter,
  log,
  stream_context,
  send_local_response,
  continue_request,
} from "@solo-io/proxy-runtime";
import { get_buffer_bytes, set_tick_period_milliseconds, BufferTypeValues } from "@solo-io/proxy-runtime/runtime";
import * as imports from "@solo-io/proxy-runtime/imports";

function pair(key: string, value: string): HeaderPair {
  return new HeaderPair(String.UTF8.encode(key), String.UTF8.encode(value));
}

class Rules {
  denyPrefix: string = "";
  addRequest: Headers = [];
  removeRequest: Array<string> = [];
  addResponse: Headers = [];
  authzCluster: string = "";
  tickMs: u32 = 0;
}

class PortcullisAsRoot extends RootContext {
  rules: Rules = new Rules();
  ticks: Counter | null = null;

  createContext(context_id: u32): Context {
    return new PortcullisAs(context_id, this);
  }

  onConfigure(configuration_size: u32): bool {
    super.onConfigure(configuration_size);
    let rules = new Rules();
    let lines = this.getConfiguration().split("\n");
    for (let i = 0; i < lines.length; i++) {
      let line = lines[i].trim();
      if (line.length == 0) continue;
      let words = line.split(" ");
      let key = words[0];
      if (key == "deny_prefix" && words.length == 2) {
        rules.denyPrefix = words[1];
      } else if (key == "add_request_header" && words.length == 3) {
        rules.addRequest.push(pair(words[1], words[2]));
      } else if (key == "remove_request_header" && words.length == 2) {
        rules.removeRequest.push(words[1]);
      } else if (key == "add_response_header" && words.length == 3) {
        rules.addResponse.push(pair(words[1], words[2]));
      } else if (key == "authz_cluster" && words.length == 2) {
        rules.authzCluster = words[1];
      } else if (key == "tick_ms" && words.length == 2) {
        rules.tickMs = U32.parseInt(words[1]);
      } else {
        log(LogLevelValues.error, "config line " + (i + 1).toString() + ": cannot read `" + line + "`");
        return false;
      }
    }
    this.rules = rules;
    if (rules.tickMs > 0) {
      this.ticks = new Counter("as_ticks");
      set_tick_period_milliseconds(rules.tickMs);
    }
    log(LogLevelValues.info, "assemblyscript filter configured: deny_prefix=" + rules.denyPrefix);
    return true;
  }

  onTick(): void {
    let ticks = this.ticks;
    if (ticks !== null) ticks.increment(1);
    log(LogLevelValues.info, "tick");
  }
}

// The authz call's answer: runs in the root context, which the SDK has made the effective
// context of the waiting request (proxy_set_effective_context) before calling this.
function authzAnswered(origin: Context, headers: u32, body_size: usize, trailers: u32): void {
  if (headers == 0) {
    log(LogLevelValues.warn, "authz call failed");
    send_local_response(503, "as_authz_failed", String.UTF8.encode("authz unavailable\n"), [], GrpcStatusValues.InvalidCode);
    return;
  }
  let status = stream_context.headers.http_callback.get(":status");
  let body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpCallResponseBody, 0, body_size as u32));
  log(LogLevelValues.info, "authz answered " + status + " " + body);
  if (status != "200") {
    send_local_response(403, "as_authz_denied", String.UTF8.encode("authz said no\n"), [], GrpcStatusValues.InvalidCode);
    return;
  }
  stream_context.headers.request.add("x-authz", body);
  continue_request();
}

class PortcullisAs extends Context {
  constructor(context_id: u32, root_context: PortcullisAsRoot) {
    super(context_id, root_context);
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    let rules = (this.root_context as PortcullisAsRoot).rules;
    let path = stream_context.headers.request.get(":path");
    let method = stream_context.headers.request.get(":method");
    log(LogLevelValues.info, "request " + method + " " + path + " (" + headers.toString() + " headers)");
    if (rules.denyPrefix.length > 0 && path.startsWith(rules.denyPrefix)) {
      send_local_response(403, "as_denied", String.UTF8.encode("denied by assemblyscript\n"),
        [pair("x-denied-by", "assemblyscript")], GrpcStatusValues.InvalidCode);
      return FilterHeadersStatusValues.StopIteration;
    }
    for (let i = 0; i < rules.removeRequest.length; i++) {
      stream_context.headers.request.remove(rules.removeRequest[i]);
    }
    for (let i = 0; i < rules.addRequest.length; i++) {
      let h = rules.addRequest[i];
      stream_context.headers.request.add(String.UTF8.decode(h.key), String.UTF8.decode(h.value));
    }
    // All headers as the SDK reads them (proxy_get_header_map_pairs), counted after the edits.
    let all = stream_context.headers.request.get_headers();
    stream_context.headers.request.add("x-header-count", all.length.toString());
    // A dotted property path as this SDK passes it (no \0 between segments): Envoy reads it as
    // one segment and finds nothing; the status code goes upstream for the tests to compare.
    let dotted = String.UTF8.encode("request.path");
    let got = imports.proxy_get_property(changetype<usize>(dotted), dotted.byteLength, scratch_ptr, scratch_ptr + 4);
    stream_context.headers.request.add("x-dotted-property", got.toString());
    if (path == "/callout" && rules.authzCluster.length > 0) {
      let call: Headers = [pair(":method", "GET"), pair(":path", "/check"), pair(":authority", rules.authzCluster)];
      let root = this.root_context;
      let r = root.httpCall(rules.authzCluster, call, new ArrayBuffer(0), [], 500, this, authzAnswered);
      log(LogLevelValues.info, "authz call: " + r.toString());
      return FilterHeadersStatusValues.StopIteration;
    }
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    let rules = (this.root_context as PortcullisAsRoot).rules;
    for (let i = 0; i < rules.addResponse.length; i++) {
      let h = rules.addResponse[i];
      stream_context.headers.response.add(String.UTF8.decode(h.key), String.UTF8.decode(h.value));
    }
    log(LogLevelValues.info, "response " + stream_context.headers.response.get(":status"));
    return FilterHeadersStatusValues.Continue;
  }

  onLog(): void {
    log(LogLevelValues.info, "done " + stream_context.headers.request.get(":path"));
  }
}

// Two u32 slots for a property answer we do not read.
let scratch_ptr: usize = changetype<usize>(new ArrayBuffer(8));

registerRootContext((context_id: u32) => { return new PortcullisAsRoot(context_id); }, "portcullis_as");
