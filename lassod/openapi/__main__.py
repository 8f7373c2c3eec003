"""Write the OpenAPI document to standard output."""

import sys

from lassod.openapi import dumps

sys.stdout.buffer.write(dumps())
