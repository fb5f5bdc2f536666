"""bioimage.io model packages in and out (the BioImage Model Zoo, deepImageJ, ilastik).

``describe``  our model card as a bioimage.io 0.5 description (pure mapping)
``export``    ``spheroseg export-bioimageio``: card + TorchScript -> validated, tested zip
``sample``    test tensors and cover: a sample frame and the model's probabilities on it
``readme``    the package's documentation from the card

The ``bioimageio`` extra (``bioimageio.spec``, ``bioimageio.core``) is imported only where a
package is read or written; without it those functions raise a message naming the extra.
"""

from __future__ import annotations
