//! Exec types: the create and start bodies and the inspect answer.

use serde::{Deserialize, Serialize};

use crate::container::null_default;

/// `POST /containers/{id}/exec`'s body, as the docker CLI and docker-py send it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecCreateRequest {
    #[serde(deserialize_with = "null_default::deserialize")]
    pub user: String,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub privileged: bool,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub tty: bool,
    /// `[height, width]` (API 1.42 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_size: Option<[u32; 2]>,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub attach_stdin: bool,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub attach_stdout: bool,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub attach_stderr: bool,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub detach: bool,
    /// docker-py sends `detachKeys` (the config file's); Go's JSON decoder, and so dockerd,
    /// matches field names in any case.
    #[serde(alias = "detachKeys", deserialize_with = "null_default::deserialize")]
    pub detach_keys: String,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub working_dir: String,
    pub cmd: Option<Vec<String>>,
}

/// `POST /exec/{id}/start`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecStartRequest {
    #[serde(deserialize_with = "null_default::deserialize")]
    pub detach: bool,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub tty: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_size: Option<[u32; 2]>,
}

/// `{"Id": "..."}`: exec create's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IdResponse {
    #[serde(rename = "Id")]
    pub id: String,
}

/// The process of an exec, as inspect shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ExecProcessConfig {
    pub tty: bool,
    pub entrypoint: String,
    pub arguments: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
}

/// `GET /exec/{id}/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ExecInspect {
    #[serde(rename = "ID")]
    pub id: String,
    pub running: bool,
    /// `null` until the process has ended.
    pub exit_code: Option<i64>,
    pub process_config: ExecProcessConfig,
    pub open_stdin: bool,
    pub open_stderr: bool,
    pub open_stdout: bool,
    pub can_remove: bool,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub detach_keys: String,
    pub pid: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docker_cli_and_docker_py_bodies_parse() {
        let cli = r#"{"User":"","Privileged":false,"Tty":false,"AttachStdin":false,
            "AttachStdout":true,"AttachStderr":true,"Detach":false,"DetachKeys":"",
            "Env":null,"WorkingDir":"","Cmd":["sh","-c","exit 5"]}"#;
        let req: ExecCreateRequest = serde_json::from_str(cli).unwrap();
        assert_eq!(req.cmd.unwrap(), ["sh", "-c", "exit 5"]);
        assert!(req.attach_stdout && !req.attach_stdin);
        let py = r#"{"AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,
            "Privileged":false,"User":"","Cmd":["echo","hi"],"Env":null,"Container":"abc"}"#;
        let req: ExecCreateRequest = serde_json::from_str(py).unwrap();
        assert_eq!(req.working_dir, "");
        let py = r#"{"Tty":true,"AttachStdin":true,"Cmd":["sh"],"detachKeys":"ctrl-p"}"#;
        let req: ExecCreateRequest = serde_json::from_str(py).unwrap();
        assert_eq!(req.detach_keys, "ctrl-p");
        let start: ExecStartRequest =
            serde_json::from_str(r#"{"Detach":true,"Tty":null}"#).unwrap();
        assert!(start.detach && !start.tty);
    }

    #[test]
    fn inspect_has_dockers_shape() {
        let v = serde_json::to_value(ExecInspect {
            id: "e".into(),
            exit_code: Some(5),
            process_config: ExecProcessConfig {
                entrypoint: "sh".into(),
                arguments: vec!["-c".into(), "exit 5".into()],
                privileged: Some(false),
                ..Default::default()
            },
            container_id: "c".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(v["ID"], "e");
        assert_eq!(v["ExitCode"], 5);
        assert_eq!(v["ContainerID"], "c");
        assert_eq!(v["ProcessConfig"]["privileged"], false);
        assert!(v["ProcessConfig"].get("user").is_none());
        assert_eq!(v["Pid"], 0);
    }
}
