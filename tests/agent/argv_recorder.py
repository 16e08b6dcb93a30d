"""A stand-in user program: writes the argv it received (after argv[0]) as JSON.

The output file is named by ``ARGV_RECORDER_OUT``; with no such variable it prints to stdout.
"""

import json
import os
import sys
from pathlib import Path

out = os.environ.get("ARGV_RECORDER_OUT")
text = json.dumps(sys.argv[1:])
if out:
    Path(out).write_text(text, encoding="utf-8")
else:
    print(text)
