"""Where the CLI writes: a command's result on stdout, everything else on stderr.

So ``cathouse audit verify > report.txt`` keeps the report and shows the progress and the
logs, and a script reads a result without the JSON log lines mixed in.
"""

from __future__ import annotations

from rich.console import Console

# Tables, verdicts, what was created: what the command was run for.
out = Console()
# Progress bars, warnings, refusals and the logs (configure_logging writes there too).
err = Console(stderr=True)
