//! Generates compat-server's messages from `proto/compat_messages.proto` with `protox` (pure
//! Rust, no system `protoc`) and `prost-build`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/compat_messages.proto");
    let fds = protox::compile(["compat_messages.proto"], ["../proto"])?;
    prost_build::Config::new()
        .enable_type_names()
        .bytes(["."])
        .compile_fds(fds)?;
    Ok(())
}
