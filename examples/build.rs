//! Generates compat-server's messages from `proto/compat_messages.proto`, and the arena
//! game's from `proto/arena.proto`, with `protox` (pure
//! Rust, no system `protoc`) and `prost-build`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/compat_messages.proto");
    println!("cargo:rerun-if-changed=../proto/arena.proto");
    let fds = protox::compile(["compat_messages.proto", "arena.proto"], ["../proto"])?;
    prost_build::Config::new()
        .enable_type_names()
        .bytes(["."])
        .compile_fds(fds)?;
    Ok(())
}
