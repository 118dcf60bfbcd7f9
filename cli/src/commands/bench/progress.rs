//! The progress bar: drawn on stderr when stderr is a terminal; otherwise each phase is one
//! plain line on stderr, so logs of CI runs show where the time went.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress of the whole run, counted in engine commands. Cheap to clone.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    drawn: bool,
    start: Instant,
}

impl Progress {
    /// A bar of `planned` engine commands.
    pub fn new(planned: u64) -> Self {
        let drawn = std::io::stderr().is_terminal();
        let bar = if drawn {
            let bar = ProgressBar::with_draw_target(Some(planned), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {percent:>3}% {msg}")
                    .expect("a valid progress template")
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            drawn,
            start: Instant::now(),
        }
    }

    /// Names the phase now running.
    pub fn phase(&self, message: impl Into<String>) {
        let message = message.into();
        if self.drawn {
            self.bar.set_message(message);
        } else {
            let t = self.start.elapsed().as_secs();
            eprintln!("berth bench: [{t:>4} s] {message}");
        }
    }

    /// Counts one engine command.
    pub fn tick(&self) {
        self.bar.inc(1);
        if self.bar.length().is_some_and(|l| self.bar.position() > l) {
            self.bar.set_length(self.bar.position());
        }
    }

    /// Sets what is left to do: `remaining` more engine commands from here.
    pub fn plan_remaining(&self, remaining: u64) {
        self.bar.set_length(self.bar.position() + remaining);
    }

    /// Counts `n` planned commands that will not run (a scenario an engine cannot do).
    pub fn skip(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Prints a line above the bar.
    pub fn println(&self, line: impl AsRef<str>) {
        if self.drawn {
            self.bar.suspend(|| eprintln!("{}", line.as_ref()));
        } else {
            eprintln!("{}", line.as_ref());
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
