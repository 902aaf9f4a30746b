"""pytest plugin of noukai_devserver, registered through the `pytest11` entry point.

It loads in every pytest run of every project that installs `noukai`, so at
import it touches only the standard library and pytest, registers nothing
autouse, and prefixes its fixtures `noukai_`.
"""
