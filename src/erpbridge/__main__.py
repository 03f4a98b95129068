"""``python -m erpbridge`` runs the command line."""

from erpbridge.cli import main

main()
