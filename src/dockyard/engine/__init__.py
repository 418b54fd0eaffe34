"""The engine: containers, images, events and their state under the data root. The API
layer above calls the services here; they call the image, snapshot and shim layers below.
"""
