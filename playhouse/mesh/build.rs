//! Generates the mesh protobuf types with protox (no system protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "../../proto";
    let file = "route_header.proto";
    println!("cargo:rerun-if-changed={proto_dir}/{file}");
    let descriptors = protox::compile([file], [proto_dir])?;
    prost_build::Config::new()
        .enable_type_names()
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
