"""The renderer: turns an accepted message into subject, HTML and text parts."""
