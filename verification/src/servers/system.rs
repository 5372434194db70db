//! System handlers (the second handler table, `send_to_system` / `request_to_system`),
//! registered on every server, Play and API alike.

use playhouse::{ApiSender, Controller, ErrorCode, HandlerRegistry, Packet};

use crate::proto::{ServerToStageNotify, SystemNotifyMessage, SystemPingReply, SystemPingRequest};

/// Answers `SystemPingRequest` and reports `SystemNotifyMessage` to the sending stage.
#[derive(Clone, Copy, Debug)]
pub struct SystemController {
    server_type: &'static str,
}

impl SystemController {
    /// The system handlers of a Play server.
    pub fn play() -> Self {
        SystemController {
            server_type: "play",
        }
    }

    /// The system handlers of an API server.
    pub fn api() -> Self {
        SystemController { server_type: "api" }
    }
}

impl Controller for SystemController {
    fn handles(&self, handlers: &mut HandlerRegistry) {
        let server_type = self.server_type;
        handlers.add_system_typed(
            move |ping: SystemPingRequest, sender: ApiSender| async move {
                if ping.fail_code > 0 {
                    return Err(code(ping.fail_code));
                }
                Ok::<_, ErrorCode>(SystemPingReply {
                    content: ping.content,
                    server_id: sender.server_id().to_owned(),
                    server_type: server_type.to_owned(),
                })
            },
        );
        handlers.add_system(
            "SystemNotifyMessage",
            |packet: Packet, sender: ApiSender| async move {
                let message: SystemNotifyMessage = packet.decode()?;
                let notify = ServerToStageNotify {
                    kind: "SystemNotifyMessage".into(),
                    sender_server_id: sender.server_id().to_owned(),
                    via_server_id: String::new(),
                    content: message.content,
                    tag: message.tag,
                };
                notify_stage(&sender, sender.from(), sender.stage_id(), &notify)?;
                Ok::<_, ErrorCode>(Packet::from_message(&notify))
            },
        );
    }
}

/// An application error code from a message field (out of range: `InvalidMessage`).
pub(crate) fn code(value: u32) -> ErrorCode {
    u16::try_from(value).map_or(ErrorCode::INVALID_MESSAGE, ErrorCode)
}

/// Sends `notify` to stage `stage_id` on `play_id`, which pushes it to its clients. Messages
/// not sent by a stage (stage id 0) have nobody to notify.
pub(crate) fn notify_stage(
    sender: &ApiSender,
    play_id: &str,
    stage_id: i64,
    notify: &ServerToStageNotify,
) -> Result<(), ErrorCode> {
    if stage_id == 0 || play_id.is_empty() {
        return Ok(());
    }
    sender
        .send_to_stage(play_id, stage_id, Packet::from_message(notify))
        .map_err(|error| error.code())
}
