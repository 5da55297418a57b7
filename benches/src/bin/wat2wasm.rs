//! `wat2wasm IN.wat OUT.wasm`: assembles a WebAssembly text module (the `wat` crate), so
//! `benches/envoy/run.sh` can load `benches/benches/noop.wat` into Envoy as the floor of
//! what any Wasm filter costs.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: wat2wasm IN.wat OUT.wasm");
        return ExitCode::from(2);
    };
    let wasm = match wat::parse_file(input) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("wat2wasm: {input}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(output, wasm) {
        eprintln!("wat2wasm: {output}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
