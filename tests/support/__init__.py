"""What several test modules share and none of them is: the tiny domains and the
``dann-serve`` command with them registered (``tiny_data``), requests to a running server
and the deployment files (``helpers``), image folders as a user keeps them
(``image_folders``). Imported as ``support.<module>``: tests/ is on ``sys.path`` because
tests/conftest.py lives there. Fixtures stay in tests/conftest.py."""
