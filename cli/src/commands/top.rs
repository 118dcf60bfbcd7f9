//! `top`: a container's processes, as the host's `ps` shows them.

use clap::Args;

use crate::backend::Backend;
use crate::format::tabwrite;

/// Display the running processes of a container
#[derive(Args, Debug, Clone)]
#[command(override_usage = "berth top CONTAINER [ps OPTIONS]")]
pub struct TopArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Options for ps (default -ef)
    #[arg(
        value_name = "ps OPTIONS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub ps_args: Vec<String>,
}

/// `berth top`.
pub async fn top<B: Backend>(backend: &B, args: TopArgs) -> anyhow::Result<()> {
    let ps_args = args.ps_args.join(" ");
    let top = backend
        .container_top(
            &args.container,
            (!ps_args.is_empty()).then_some(ps_args.as_str()),
        )
        .await?;
    print!("{}", render(&top.titles, &top.processes));
    Ok(())
}

/// docker's table: `tabwriter.NewWriter(out, 20, 1, 3, ' ', 0)`.
fn render(titles: &[String], processes: &[Vec<String>]) -> String {
    let mut text = titles.join("\t");
    text.push('\n');
    for p in processes {
        text.push_str(&p.join("\t"));
        text.push('\n');
    }
    tabwrite(&text, 20, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_twenty_wide_like_dockers() {
        let titles: Vec<String> = ["UID", "PID", "CMD"].map(String::from).to_vec();
        let procs = vec![["root", "9751", "sleep 300"].map(String::from).to_vec()];
        assert_eq!(
            render(&titles, &procs),
            "UID                 PID                 CMD\nroot                9751                sleep 300\n"
        );
    }
}
