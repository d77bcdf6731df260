//! Start-up checks: can this kernel (and sandbox) run the io_uring driver?

use io_uring::{IoUring, Probe, opcode};

/// Submission queue entries of the driver's ring.
const RING_ENTRIES: u32 = 512;

/// The operations the driver submits, with their names for the log.
const OPCODES: [(u8, &str); 6] = [
    (opcode::Accept::CODE, "ACCEPT"),
    (opcode::Connect::CODE, "CONNECT"),
    (opcode::Recv::CODE, "RECV"),
    (opcode::SendMsg::CODE, "SENDMSG"),
    (opcode::Read::CODE, "READ"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
];

/// A ring on which every operation the driver uses is supported, or why there is none:
/// `io_uring_setup` refused (old kernel, `kernel.io_uring_disabled`, seccomp), the kernel
/// cannot wait with a timeout (`IORING_FEAT_EXT_ARG`, Linux 5.11), or an opcode is missing.
pub(super) fn ring() -> Result<IoUring, String> {
    let ring = IoUring::new(RING_ENTRIES).map_err(|error| format!("io_uring_setup: {error}"))?;
    if !ring.params().is_feature_ext_arg() {
        return Err("the kernel lacks IORING_FEAT_EXT_ARG (waits with a timeout)".to_owned());
    }
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|error| format!("IORING_REGISTER_PROBE: {error}"))?;
    let missing: Vec<&str> = OPCODES
        .iter()
        .filter(|(code, _)| !probe.is_supported(*code))
        .map(|(_, name)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the kernel lacks io_uring operations {}",
            missing.join(", ")
        ));
    }
    Ok(ring)
}
