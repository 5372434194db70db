//! Generates the verification messages from `proto/test_messages.proto` with `protox` (pure
//! Rust, no system `protoc`) and `prost-build`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/test_messages.proto");
    let fds = protox::compile(["test_messages.proto"], ["../proto"])?;
    prost_build::Config::new()
        .enable_type_names()
        .compile_fds(fds)?;
    Ok(())
}
